-- The 20-line cart every API benchmark sends (validate.lua and the apply race use the
-- same items: bench/apply_race.py builds the identical JSON).
local categories = {"electronics", "home", "apparel", "grocery"}

local function cart_json()
  local items = {}
  for i = 1, 20 do
    items[i] = string.format(
      '{"sku":"SKU-%d","category":"%s","unit_price":"%d.%02d","quantity":%d}',
      i, categories[(i % 4) + 1], 5 + i * 3, (i * 17) % 100, 1 + (i % 3))
  end
  return '{"currency":"USD","items":[' .. table.concat(items, ",") .. '],"shipping":"7.99"}'
end

return cart_json()
