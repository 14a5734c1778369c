-- The malformed-key flood of benches/load/run.sh (issue 26): every request carries an API key
-- that gatehouse must refuse by its shape or checksum alone, never reading the store. run.sh
-- fills in the placeholders below: a real key of the bench user, their access token, and Basic
-- credentials whose password is the real key with one character flipped. wrk runs requests
-- without the script when it does not load; run.sh then reports the flood target missed.
local alphabet = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
local key = "@KEY@"
local jwt = "@JWT@"
local basics = {
@BASICS@
}
local KEY_LEN = 52
local longs = {}
local sent = 0

local function base62(n)
  local t = {}
  for i = 1, n do
    local c = math.random(62)
    t[i] = alphabet:sub(c, c)
  end
  return table.concat(t)
end

-- The real key with one character after `gk_` replaced by another base62 one: a bad checksum.
local function flipped()
  local pos = math.random(4, KEY_LEN)
  local old = key:sub(pos, pos)
  local new = old
  while new == old do
    local c = math.random(62)
    new = alphabet:sub(c, c)
  end
  return key:sub(1, pos - 1) .. new .. key:sub(pos + 1)
end

-- `gk_` and random base62 of any length but a key's.
local function wrong_length()
  local n = math.random(0, 120)
  if n == KEY_LEN - 3 then n = n + 1 end
  return "gk_" .. base62(n)
end

local threads = 0
function setup(thread)
  threads = threads + 1
  thread:set("id", threads)
end

function init(args)
  math.randomseed(os.time() * 100 + (id or 0))
  -- 10 kB keys are made once per thread (making one per request would slow wrk, not gatehouse).
  for i = 1, 32 do longs[i] = "gk_" .. base62(10 * 1024) end
end

local kinds = {
  function() return "X-API-Key", wrong_length() end,
  function() return "X-API-Key", "gk_" .. base62(KEY_LEN - 3) end, -- right shape, wrong checksum
  function() return "X-API-Key", flipped() end,
  function() return "X-API-Key", key:sub(1, math.random(3, KEY_LEN - 1)) end, -- cut short
  function() return "X-API-Key", longs[math.random(#longs)] end,
  function() return "X-API-Key", jwt end, -- a valid token is no key
  function() return "X-API-Key", base62(KEY_LEN) end, -- no `gk_`
  function() return "Authorization", "Bearer gk_" .. base62(KEY_LEN - 3) end,
  function() return "Authorization", "Bearer " .. flipped() end,
  function() return "Authorization", basics[math.random(#basics)] end,
}

-- FLOOD_LONG=0 (run.sh's knob): no 10 kB keys, to see what their bytes cost.
if os.getenv("FLOOD_LONG") == "0" then kinds[5] = kinds[1] end

function request()
  sent = sent + 1
  local name, value = kinds[sent % #kinds + 1]()
  return wrk.format("GET", "/x", { [name] = value })
end
