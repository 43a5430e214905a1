-- wrk script: POST a form-encoded client-credentials token request.
-- Body comes from the file named by env var WRK_BODY_FILE when set,
-- otherwise the bench peer's default request body below is used.
local default_body =
  "grant_type=client_credentials&client_id=bench&client_secret=VY5h0TJO20H92aPXNaLWX4ZkbHi4X1BAdJ_a9fyVk9g"

local function read_body()
  local path = os.getenv("WRK_BODY_FILE")
  if path == nil or path == "" then
    return default_body
  end
  local f = assert(io.open(path, "rb"), "cannot open WRK_BODY_FILE " .. path)
  local body = f:read("*a")
  f:close()
  -- tolerate a trailing newline written by `echo` or an editor
  return (body:gsub("[\r\n]+$", ""))
end

wrk.method = "POST"
wrk.body = read_body()
wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"

-- No response() callback on purpose: wrk already reports Non-2xx responses,
-- and a per-response Lua hook would slow the load generator down.
