-- wrk script for benches/raft/bench.sh: KV writes, every request a new key, the same value.
--
-- usage: wrk -t1 -cW -dDs --latency -s write.lua http://HOST:PORT -- SYSTEM PREFIX VALUE_BYTES MAX
--   SYSTEM outpost: `PUT /v1/kv/<key>` with the value as body; a write counts as done when
--                   the answer is 200 with body `true` (committed, fsynced and applied).
--          etcd:    `POST /v3/kv/put` {"key": base64, "value": base64} (etcd's HTTP/JSON
--                   gateway); done when the answer is 200.
--   PREFIX      keys are PREFIX/<thread>/<n>, n from 1
--   VALUE_BYTES the size of every value (the bytes stored, before etcd's base64)
--   MAX         each wrk thread stops after MAX answers (0: only the -d duration bounds it)
--
-- done() prints one line: RESULT <tab> ok <tab> failed <tab> seconds <tab> p50 ms <tab> p99 ms
-- <tab> max ms <tab> the first failed answer. `seconds` runs from the start of the threads to
-- their last answer (wall clock, CLOCK_MONOTONIC through LuaJIT's ffi), so a run stopped by MAX
-- is not diluted by wrk sleeping out the rest of -d.

local ffi = require("ffi")
ffi.cdef [[
  typedef struct { long tv_sec; long tv_nsec; } raft_bench_timespec;
  int clock_gettime(int clk_id, raft_bench_timespec *tp);
]]
local ts = ffi.new("raft_bench_timespec")
local function now()
  ffi.C.clock_gettime(1, ts) -- CLOCK_MONOTONIC
  return tonumber(ts.tv_sec) + tonumber(ts.tv_nsec) * 1e-9
end

local B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
local function base64(s)
  local out = {}
  for i = 1, #s, 3 do
    local a, b, c = s:byte(i, i + 2)
    local n = a * 65536 + (b or 0) * 256 + (c or 0)
    local c1 = bit.band(bit.rshift(n, 18), 63) + 1
    local c2 = bit.band(bit.rshift(n, 12), 63) + 1
    local c3 = bit.band(bit.rshift(n, 6), 63) + 1
    local c4 = bit.band(n, 63) + 1
    out[#out + 1] = B64:sub(c1, c1) .. B64:sub(c2, c2)
      .. (b and B64:sub(c3, c3) or "=") .. (c and B64:sub(c4, c4) or "=")
  end
  return table.concat(out)
end

-- setup/done run in wrk's main Lua state; the others in each thread's own.
local threads = {}
local next_id = 1
function setup(thread)
  thread:set("id", next_id)
  next_id = next_id + 1
  table.insert(threads, thread)
end

function init(args)
  system, prefix = args[1], args[2]
  local value_bytes, max_answers = tonumber(args[3]), tonumber(args[4])
  if (system ~= "outpost" and system ~= "etcd") or not prefix or not value_bytes or not max_answers then
    error("write.lua: arguments SYSTEM(outpost|etcd) PREFIX VALUE_BYTES MAX")
  end
  max = max_answers
  -- A fixed printable value, so outpost's body and etcd's decoded value are the same bytes.
  local alphabet = "abcdefghijklmnopqrstuvwxyz0123456789"
  local v = {}
  for i = 1, value_bytes do
    local k = (i * 7) % #alphabet + 1
    v[i] = alphabet:sub(k, k)
  end
  value = table.concat(v)
  value_b64 = base64(value)
  sent, ok, failed, sample = 0, 0, 0, ""
  t0 = now()
  t_last = t0
end

function request()
  sent = sent + 1
  local key = string.format("%s/%d/%09d", prefix, id, sent)
  if system == "outpost" then
    return wrk.format("PUT", "/v1/kv/" .. key, nil, value)
  end
  return wrk.format("POST", "/v3/kv/put", { ["Content-Type"] = "application/json" },
    '{"key":"' .. base64(key) .. '","value":"' .. value_b64 .. '"}')
end

function response(status, headers, body)
  t_last = now()
  if status == 200 and (system ~= "outpost" or body == "true") then
    ok = ok + 1
  else
    failed = failed + 1
    if sample == "" then
      sample = (status .. " " .. tostring(body)):sub(1, 200):gsub("[\t\r\n]", " ")
    end
  end
  if max > 0 and ok + failed >= max then
    wrk.thread:stop()
  end
end

function done(summary, latency, requests)
  local all_ok, all_failed, seconds, first_sample = 0, 0, 0, ""
  for _, t in ipairs(threads) do
    all_ok = all_ok + t:get("ok")
    all_failed = all_failed + t:get("failed")
    local s = t:get("t_last") - t:get("t0")
    if s > seconds then seconds = s end
    if first_sample == "" then first_sample = t:get("sample") end
  end
  local e = summary.errors
  local socket = e.connect + e.read + e.write + e.timeout
  if socket > 0 and first_sample == "" then
    first_sample = string.format("socket errors: connect %d read %d write %d timeout %d",
      e.connect, e.read, e.write, e.timeout)
  end
  io.write(string.format("RESULT\t%d\t%d\t%.6f\t%.3f\t%.3f\t%.3f\t%s\n",
    all_ok, all_failed + socket, seconds,
    latency:percentile(50) / 1000, latency:percentile(99) / 1000, latency.max / 1000, first_sample))
end
