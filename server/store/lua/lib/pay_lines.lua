-- Lines to pay as the caller sends them: 'reason=amount,...' ('' for none).
local function pay_lines(text)
  local lines = {}
  for reason, amount in string.gmatch(text or '', '([%a_]+)=(%d+)') do
    lines[#lines + 1] = {reason, tonumber(amount)}
  end
  return lines
end
