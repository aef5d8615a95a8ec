-- Signup with a unique address per request. Args: <run id>.
local counter = 0
function setup(thread)
  thread:set("tid", counter)
  counter = counter + 1
end

local run, n = "x", 0
function init(args)
  run = args[1]
end

function request()
  n = n + 1
  return wrk.format("POST", "/signup", { ["Content-Type"] = "application/json" },
    '{"email":"s' .. run .. "-" .. tid .. "-" .. n .. '@example.com","password":"password"}')
end
