-- GET with an Authorization header. Args: <path> <bearer token or "">.
local path, auth = "/", ""
function init(args)
  path = args[1]
  auth = args[2] or ""
end

function request()
  local h = {}
  if auth ~= "" then h["Authorization"] = "Bearer " .. auth end
  return wrk.format("GET", path, h)
end
