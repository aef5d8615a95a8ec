-- Password grant for random seeded users. Args: <user count>.
local counter = 0
function setup(thread)
  thread:set("tid", counter)
  counter = counter + 1
end

local users = 1
function init(args)
  users = tonumber(args[1])
  math.randomseed(os.time() + tid * 7919)
end

function request()
  local u = math.random(1, users)
  return wrk.format("POST", "/token", { ["Content-Type"] = "application/x-www-form-urlencoded" },
    "grant_type=password&username=user" .. u .. "%40example.com&password=password")
end
