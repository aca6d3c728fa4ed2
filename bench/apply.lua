-- wrk script: POST /api/v1/coupons/apply with BENCH25 (25% off, no limits), a 20-line
-- cart, a new customer, order and Idempotency-Key per request, and a shopper context
-- (IP, session). Counts 200 responses that are not `"applied":true` as bodies_not_valid.
local script_dir = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
local cart = dofile(script_dir .. "cart.lua")
local key = os.getenv("BENCH_API_KEY") or ""
local code = os.getenv("BENCH_CODE") or "BENCH25"

local threads = {}
function setup(thread)
  thread:set("id", #threads + 1)
  table.insert(threads, thread)
end

function init(args)
  math.randomseed(os.time() * 1000 + id)
  not_valid = 0
  counter = 0
  run = math.random(1, 1000000000)
end

function request()
  counter = counter + 1
  local n = run .. "-" .. id .. "-" .. counter
  local body = '{"coupon_code":"' .. code .. '","customer":{"id":"a-' .. n ..
    '"},"order_id":"bench-' .. n .. '","context":{"ip":"10.' .. (counter % 250) .. '.' ..
    id .. '.' .. (counter % 97) .. '","session_id":"s-' .. n .. '"},"cart":' .. cart .. '}'
  return wrk.format("POST", "/api/v1/coupons/apply",
    {["Authorization"] = "Api-Key " .. key, ["Content-Type"] = "application/json",
     ["Idempotency-Key"] = "bench-" .. n}, body)
end

function response(status, headers, body)
  if status == 200 and not string.find(body, '"applied":true', 1, true) then
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
