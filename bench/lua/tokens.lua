-- Refresh grant: every request uses a fresh seeded refresh token (rotation makes each
-- token single-use). Args: <token file> <thread count>.
local counter = 0
function setup(thread)
  thread:set("tid", counter)
  counter = counter + 1
end

local tokens, idx = {}, 0
function init(args)
  local n = tonumber(args[2])
  local i = 0
  for line in io.lines(args[1]) do
    if i % n == tid then tokens[#tokens + 1] = line end
    i = i + 1
  end
end

function request()
  idx = idx + 1
  local t = tokens[idx] or "exhausted"
  return wrk.format("POST", "/token", { ["Content-Type"] = "application/x-www-form-urlencoded" },
    "grant_type=refresh_token&refresh_token=" .. t)
end
