-- wrk script: random announces over 1,000 fixed info-hashes, numwant 50, keep-alive.
-- Info-hash i (0..999) is: two bytes of i (big-endian), then byte j (2..19) = (i*j*37 + j*11) % 256;
-- bench.sh writes the same list as hex for opentracker's whitelist.

local hashes = {}

local function info_hash(i)
  local t = { string.format("%%%02X%%%02X", math.floor(i / 256), i % 256) }
  for j = 2, 19 do
    t[#t + 1] = string.format("%%%02X", (i * j * 37 + j * 11) % 256)
  end
  return table.concat(t)
end

for i = 0, 999 do
  hashes[i + 1] = info_hash(i)
end

function init(args)
  math.randomseed(os.time())
end

function request()
  local left = 0
  if math.random() < 0.7 then
    left = math.random(1, 1000000)
  end
  local path = "/announce?info_hash=" .. hashes[math.random(1, 1000)]
    .. "&peer_id=-WR0001-" .. string.format("%06d%06d", math.random(0, 999999), math.random(0, 999999))
    .. "&port=" .. math.random(1024, 65535)
    .. "&uploaded=0&downloaded=0&left=" .. left
    .. "&compact=1&numwant=50"
  return wrk.format("GET", path)
end
