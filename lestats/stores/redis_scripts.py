"""The Lua scripts of `RedisStore`: each one step that Redis runs atomically.

Keys (all under one hash tag, so a Redis Cluster keeps a job space in one slot):

- `last`     string  the highest id issued (INCR): ids are consecutive from 1 and never repeat.
- `jobs`     stream  one entry per unfinished job, entry id `<job id>-0`, field `q` (the query's
                     JSON); consumer group `nodes`: an entry sits in the pending list of the node
                     that runs it, and leaves the stream when the job finishes.
- `status`   hash    job id -> `r` (unfinished), `d` (done), `e` (error). An issued id that is
                     not here was forgotten (retention): it answers `error`, reason `expired`.
- `data`     hash    job id -> the result (done) or the reason (error).
- `by_id`    zset    finished job ids scored by id (retention by count);
- `by_time`  zset    ... scored by finish time in ms, Redis's clock (retention by age).
- `alive:N`  string  node N's heartbeat, expiring after the claim idle time.
- `fingerprint`      the dataset every node of this job space must serve.

Every script that writes starts with `#!lua`: Redis then refuses it whole when out of memory,
instead of stopping it halfway. A script that may fail on a check does so before its first
write (Redis does not roll back a script's earlier writes).
"""

from __future__ import annotations

_NOW_MS = """local now = redis.call('TIME')
local now_ms = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
"""
"""Redis's clock in ms, as `now_ms` (scripts use the server's clock, never a node's)."""


def _retention(
    keys: tuple[int, int, int, int, int], keep: int, age: int, limit: str, into: str
) -> str:
    """Lua forgetting the finished jobs past the retention, oldest first, `limit` each way.

    The ids it takes out of `status` are appended to the Lua table `into`. `keys`: the KEYS
    indices of status, data, by_id, by_time and last; `keep` and `age`: the ARGV indices of
    keep_last and max_age_ms (each '' when not set). Needs `now_ms`.
    """
    status, data, by_id, by_time, last = keys
    return f"""local function forget(old)
    if redis.call('HDEL', KEYS[{status}], old) == 1 then
        {into}[#{into} + 1] = tonumber(old)
    end
    redis.call('HDEL', KEYS[{data}], old)
    redis.call('ZREM', KEYS[{by_id}], old)
    redis.call('ZREM', KEYS[{by_time}], old)
end
if ARGV[{keep}] ~= '' then
    local below = tonumber(redis.call('GET', KEYS[{last}]) or '0') - tonumber(ARGV[{keep}])
    local olds = redis.call('ZRANGE', KEYS[{by_id}], '-inf', below, 'BYSCORE', 'LIMIT', 0, {limit})
    for _, old in ipairs(olds) do
        forget(old)
    end
end
if ARGV[{age}] ~= '' then
    local before = now_ms - tonumber(ARGV[{age}])
    local olds = redis.call(
        'ZRANGE', KEYS[{by_time}], '-inf', '(' .. before, 'BYSCORE', 'LIMIT', 0, {limit}
    )
    for _, old in ipairs(olds) do
        forget(old)
    end
end
"""


ACCEPT = """#!lua
-- KEYS: last, status, jobs; ARGV: group, node, max id, then one query json per job.
-- The jobs get consecutive ids; returns the first.
local count = #ARGV - 3
local first = tonumber(redis.call('GET', KEYS[1]) or '0') + 1
if first + count - 1 >= tonumber(ARGV[3]) then
    return redis.error_reply('job ids exhausted')
end
for i = 1, count do
    local id = first + i - 1
    redis.call('XADD', KEYS[3], id .. '-0', 'q', ARGV[3 + i])
    redis.call('HSET', KEYS[2], id, 'r')
end
redis.call('SET', KEYS[1], first + count - 1)
redis.call('XREADGROUP', 'GROUP', ARGV[1], ARGV[2], 'COUNT', count, 'STREAMS', KEYS[3], '>')
return first
"""

FINISH = (
    """#!lua
-- KEYS: status, data, jobs, by_id, by_time, last
-- ARGV: group, channel, node, keep_last (or ''), max_age_ms (or ''), old jobs to forget at most
--       per job recorded, then for each finished job: its id, status (d or e), result or reason
-- Returns {one character per job: 1 recorded, 0 not unfinished any more; the ids of the old
-- jobs forgotten...}. Publishes `node id id...` (the jobs recorded) once on the channel.
"""
    + _NOW_MS
    + """local flags = {}
local recorded = {}
for i = 7, #ARGV, 3 do
    local id = ARGV[i]
    if redis.call('HGET', KEYS[1], id) == 'r' then
        redis.call('HSET', KEYS[1], id, ARGV[i + 1])
        redis.call('HSET', KEYS[2], id, ARGV[i + 2])
        redis.call('XACK', KEYS[3], ARGV[1], id .. '-0')
        redis.call('XDEL', KEYS[3], id .. '-0')
        redis.call('ZADD', KEYS[4], id, id)
        redis.call('ZADD', KEYS[5], now_ms, id)
        flags[#flags + 1] = '1'
        recorded[#recorded + 1] = id
    else
        flags[#flags + 1] = '0'
    end
end
local out = {table.concat(flags)}
if #recorded == 0 then
    return out
end
redis.call('PUBLISH', ARGV[2], ARGV[3] .. ' ' .. table.concat(recorded, ' '))
local budget = tonumber(ARGV[6]) * #recorded
"""
    + _retention((1, 2, 4, 5, 6), 4, 5, "budget", "out")
    + """return out
"""
)

EXPIRE = (
    """#!lua
-- KEYS: status, data, by_id, by_time, last; ARGV: keep_last (or ''), max_age_ms (or ''), limit
-- Returns the ids forgotten.
local limit = tonumber(ARGV[3])
local gone = {}
"""
    + _NOW_MS
    + _retention((1, 2, 3, 4, 5), 1, 2, "limit", "gone")
    + """return gone
"""
)

FORGET = """#!lua
-- KEYS: status, data, by_id, by_time; ARGV: job id
local status = redis.call('HGET', KEYS[1], ARGV[1])
if status ~= 'd' and status ~= 'e' then
    return 0
end
redis.call('HDEL', KEYS[1], ARGV[1])
redis.call('HDEL', KEYS[2], ARGV[1])
redis.call('ZREM', KEYS[3], ARGV[1])
redis.call('ZREM', KEYS[4], ARGV[1])
return 1
"""

OUTCOME = """#!lua flags=no-writes
-- KEYS: status, data, last; ARGV: job id. Returns {status or false, data or false, last}
local status = redis.call('HGET', KEYS[1], ARGV[1])
local data = false
if status == 'd' or status == 'e' then
    data = redis.call('HGET', KEYS[2], ARGV[1])
end
return {status, data, redis.call('GET', KEYS[3]) or '0'}
"""

STATUSES = """#!lua flags=no-writes
-- KEYS: status, last, by_id, jobs; ARGV: after, limit, how many ids to look at at most.
-- Listed (not forgotten) ids above `after`, from the oldest one kept: {last id, the highest id
-- looked at, one status character per listed id (r, d or e), the listed ids...}
local last = tonumber(redis.call('GET', KEYS[2]) or '0')
local floor = last + 1
local oldest_finished = redis.call('ZRANGE', KEYS[3], 0, 0)
if oldest_finished[1] then
    floor = math.min(floor, tonumber(oldest_finished[1]))
end
local oldest_open = redis.call('XRANGE', KEYS[4], '-', '+', 'COUNT', 1)
if oldest_open[1] then
    floor = math.min(floor, tonumber(string.match(oldest_open[1][1], '^(%d+)')))
end
local id = math.max(tonumber(ARGV[1]) + 1, floor)
local limit = tonumber(ARGV[2])
local final = math.min(last, id + tonumber(ARGV[3]) - 1)
local codes = {}
local out = {last, final, ''}
while id <= final and #codes < limit do
    local status = redis.call('HGET', KEYS[1], id)
    if status then
        codes[#codes + 1] = status
        out[#out + 1] = id
    end
    id = id + 1
end
out[2] = id - 1
out[3] = table.concat(codes)
return out
"""

TAKE_OVER = """#!lua
-- KEYS: jobs, status; ARGV: group, this node, heartbeat key prefix, limit
-- Moves to this node the pending jobs of nodes whose heartbeat expired; forgets such nodes once
-- they hold nothing. Returns {job id, query json, job id, query json, ...}.
local limit = tonumber(ARGV[4])
local taken = {}
local summary = redis.call('XPENDING', KEYS[1], ARGV[1])
local holders = {}
if summary[4] then
    for _, holder in ipairs(summary[4]) do
        holders[holder[1]] = true
    end
end
for _, consumer in ipairs(redis.call('XINFO', 'CONSUMERS', KEYS[1], ARGV[1])) do
    local name = consumer[2]
    if name ~= ARGV[2] and redis.call('EXISTS', ARGV[3] .. name) == 0 then
        if holders[name] and #taken < limit * 2 then
            local pending = redis.call('XPENDING', KEYS[1], ARGV[1], '-', '+', limit, name)
            local ids = {}
            for _, entry in ipairs(pending) do
                ids[#ids + 1] = entry[1]
            end
            local claimed = redis.call('XCLAIM', KEYS[1], ARGV[1], ARGV[2], 0, unpack(ids))
            for _, entry in ipairs(claimed) do
                if entry and entry[1] then
                    local id = string.match(entry[1], '^(%d+)-0$')
                    if id and redis.call('HGET', KEYS[2], id) == 'r' then
                        taken[#taken + 1] = id
                        taken[#taken + 1] = entry[2][2]
                    else
                        redis.call('XACK', KEYS[1], ARGV[1], entry[1])
                        redis.call('XDEL', KEYS[1], entry[1])
                    end
                end
            end
        elseif not holders[name] then
            redis.call('XGROUP', 'DELCONSUMER', KEYS[1], ARGV[1], name)
        end
    end
end
return taken
"""

JOIN = """#!lua
-- KEYS: fingerprint; ARGV: this node's fingerprint. Returns the job space's fingerprint.
redis.call('SET', KEYS[1], ARGV[1], 'NX')
return redis.call('GET', KEYS[1])
"""
