-- wrk script of benches/audit/run.sh. Run with as many threads as connections (-t N -c N), so
-- each wrk thread has one connection and its requests and responses strictly alternate.
-- Environment: BENCH_MODE (login | change), BENCH_STATE (client.py state's file: "i username
-- 1|2 access_token" per line), BENCH_PW_A, BENCH_PW_B (the two passwords), BENCH_THREADS.
--   login   POST /api/token/ with valid credentials, each thread cycling over its users;
--   change  PUT /api/auth/profile/password/ flipping each user between the two passwords,
--           each change with the access token the user's previous change returned (a change
--           revokes every older token and answers with a fresh pair).
-- Thread t takes the users i with i % BENCH_THREADS == t: no two connections share a user.

local counter = 0
function setup(thread)
  thread:set("id", counter)
  counter = counter + 1
end

local mode = os.getenv("BENCH_MODE")
local passwords = { os.getenv("BENCH_PW_A"), os.getenv("BENCH_PW_B") }
local mine = {}
local cur = 0

function init(args)
  local threads = tonumber(os.getenv("BENCH_THREADS"))
  for line in io.lines(os.getenv("BENCH_STATE")) do
    local i, name, pw, token = line:match("^(%d+) (%S+) (%d) (%S+)$")
    if tonumber(i) % threads == id then
      table.insert(mine, { name = name, pw = tonumber(pw), token = token })
    end
  end
  if #mine == 0 then
    error("thread " .. id .. " has no users")
  end
end

function request()
  cur = cur % #mine + 1
  local u = mine[cur]
  if mode == "login" then
    return wrk.format("POST", "/api/token/", { ["Content-Type"] = "application/json" },
      '{"username":"' .. u.name .. '","password":"' .. passwords[u.pw] .. '"}')
  end
  return wrk.format("PUT", "/api/auth/profile/password/", {
    ["Content-Type"] = "application/json",
    ["Authorization"] = "Bearer " .. u.token,
  }, '{"old_password":"' .. passwords[u.pw] .. '","new_password":"' .. passwords[3 - u.pw] .. '"}')
end

if mode == "change" then
  function response(status, headers, body)
    if status == 200 then
      local u = mine[cur]
      u.token = body:match('"access"%s*:%s*"([^"]+)"')
      u.pw = 3 - u.pw
    end
  end
end
