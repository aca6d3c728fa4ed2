-- wrk script: POST /api/v1/coupons/validate with BENCH25, a 20-line cart and a random
-- customer id per request. BENCH_API_KEY comes from the environment (bench/run.sh).
-- Counts 200 responses whose body is not `"valid":true` (a broken seed, a wrong key
-- scope) and prints them at the end as `bodies_not_valid: N`.
local script_dir = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
local cart = dofile(script_dir .. "cart.lua")
local key = os.getenv("BENCH_API_KEY") or ""
local code = os.getenv("BENCH_CODE") or "BENCH25"

wrk.method = "POST"
wrk.path = "/api/v1/coupons/validate"
wrk.headers["Authorization"] = "Api-Key " .. key
wrk.headers["Content-Type"] = "application/json"

local prefix = '{"coupon_code":"' .. code .. '","customer":{"id":"u-'
local suffix = '"},"cart":' .. cart .. '}'
-- BENCH_CONTEXT=1: also send a shopper context (IP and session), so the abuse limits
-- have keys to check (bench/run.sh step 11).
local with_context = os.getenv("BENCH_CONTEXT") == "1"

local threads = {}
function setup(thread)
  thread:set("id", #threads + 1)
  table.insert(threads, thread)
end

function init(args)
  math.randomseed(os.time() * 1000 + id)
  not_valid = 0
end

function request()
  local n = math.random(1, 1000000000)
  if with_context then
    return wrk.format(nil, nil, nil, prefix .. n .. '"},"context":{"ip":"10.' ..
      (n % 250) .. '.' .. (n % 199) .. '.' .. (n % 97) .. '","session_id":"s-' .. n ..
      '"},"cart":' .. cart .. '}')
  end
  return wrk.format(nil, nil, nil, prefix .. n .. suffix)
end

function response(status, headers, body)
  if status == 200 and not string.find(body, '"valid":true', 1, true) then
    not_valid = not_valid + 1
  end
end

function done(summary, latency, requests)
  local total = 0
  for _, thread in ipairs(threads) do
    total = total + (thread:get("not_valid") or 0)
  end
  io.write(string.format("bodies_not_valid: %d\n", total))
end
