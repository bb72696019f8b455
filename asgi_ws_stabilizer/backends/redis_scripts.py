"""The Redis backend's server-side steps, one Lua script each, so that no step is a
read-modify-write across round trips (the way Centrifuge's Redis engine does it).

Keys, all under ``<prefix>:`` (``backend_prefix``):

* ``g``: the bus counter; ``bus``: a stream whose entry ids are ``<g>-0``, one per hub send;
* ``nodes``: a sorted set of live processes, scored by when they expire (milliseconds, Redis
  ``TIME``); a process refreshes its score every ``presence_ttl`` / 3;
* ``n:<node>:c`` (connection id -> client id), ``n:<node>:cc`` (client id -> sockets),
  ``n:<node>:g:<group>`` (connection id -> client id), ``n:<node>:gs`` (group -> sockets):
  one process's sockets. Every ``n:<node>:*`` key expires ``presence_ttl`` after the process's
  last refresh, so a process killed without a word leaves nothing behind.

A bus entry records the process that made it and that process's number for it (``n``, ``q``):
a writer that lost the reply to a batch finds in the bus which of its sends already ran, so a
retry never delivers a message twice, however long Redis was away.
"""

from __future__ import annotations

from .redis_session_scripts import APPEND, KEEP_ALIVE, OPS

_LIVE_NODES = """
local function live_nodes(prefix)
  local t = redis.call('TIME')
  local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
  return redis.call('ZRANGEBYSCORE', prefix .. 'nodes', now, '+inf')
end
"""

PUBLISH = (
    _LIVE_NODES
    + APPEND
    + """
-- ARGV: prefix, node, pseq, maxlen, kind, target, excluded (newline-separated ids; for kind
-- 'session', the connection id that must still serve the session), header (JSON: kind, target,
-- excluded, frame type, close code, reason), payload, frame type (t/b), resume_buffer_size.
-- An entry has four fields (few to parse on every process): h, p, and the node and its pseq, so
-- that a publisher that lost a reply can tell from the bus what already ran (no TTL'd key
-- involved); plus, per process that serves a session the send reached, o:<node> = "sid seq,..."
-- (the number the message got in that session's log).
local prefix, node = ARGV[1], ARGV[2]
local kind, target = ARGV[5], ARGV[6]
local excluded, owner = {}, nil
if kind == 'session' then owner = ARGV[7]
else for id in string.gmatch(ARGV[7], '[^\\n]+') do excluded[id] = true end end
local listed = {}
local appended = append_sessions(prefix, kind, target, excluded, owner, ARGV[10] .. ARGV[9],
  string.len(ARGV[9]), tonumber(ARGV[11]), listed)
if kind == 'session' and appended == 0 then return {0, 0} end
local count = 0
if kind == 'session' then count = appended end
for _, other in ipairs(kind ~= 'session' and live_nodes(prefix) or {}) do
  local base = prefix .. 'n:' .. other
  if kind == 'client' or kind == 'close' then
    if not excluded[target] then
      count = count + tonumber(redis.call('HGET', base .. ':cc', target) or '0')
    end
  else
    local key = base .. ':c'
    if kind == 'group' then key = base .. ':g:' .. target end
    if next(excluded) == nil then
      count = count + redis.call('HLEN', key)
    else
      local pairs_ = redis.call('HGETALL', key)
      for i = 1, #pairs_, 2 do
        if not excluded[pairs_[i]] and not excluded[pairs_[i + 1]] then count = count + 1 end
      end
    end
  end
end
local g = redis.call('INCR', prefix .. 'g')
local fields = {'h', ARGV[8], 'p', ARGV[9], 'n', node, 'q', ARGV[3]}
for other, sessions in pairs(listed) do
  fields[#fields + 1] = 'o:' .. other
  fields[#fields + 1] = table.concat(sessions, ',')
end
redis.call('XADD', prefix .. 'bus', 'MAXLEN', '~', ARGV[4], g .. '-0', unpack(fields))
return {g, count}
"""
)

PRESENCE = (
    OPS
    + """
-- ARGV: prefix, node, ttl_ms, sessions' ttl_ms while served, and while their client is away,
-- then operations of 4 fields each: op, connection id, client id, group (or the new client id
-- for 'rename'). op: add, remove, join, leave, rename, or a session's (see OPS).
local prefix, node, ttl = ARGV[1], ARGV[2], ARGV[3]
local base = prefix .. 'n:' .. node
local touched = {}
local function touch(key) touched[key] = true end
local function hdecr(key, field)
  if redis.call('HINCRBY', key, field, -1) <= 0 then redis.call('HDEL', key, field) end
  touch(key)
end
for i = 6, #ARGV, 4 do
  local op, conn, cid, extra = ARGV[i], ARGV[i + 1], ARGV[i + 2], ARGV[i + 3]
  if string.byte(op) == 115 then -- 's': a session's
    session_op(prefix, node, op, conn, cid, extra, ARGV[4], ARGV[5])
  elseif op == 'add' then
    if redis.call('HSETNX', base .. ':c', conn, cid) == 1 then
      redis.call('HINCRBY', base .. ':cc', cid, 1)
    end
    touch(base .. ':c'); touch(base .. ':cc')
  elseif op == 'remove' then
    if redis.call('HDEL', base .. ':c', conn) == 1 then hdecr(base .. ':cc', cid) end
  elseif op == 'join' then
    if redis.call('HSETNX', base .. ':g:' .. extra, conn, cid) == 1 then
      redis.call('HINCRBY', base .. ':gs', extra, 1)
    end
    touch(base .. ':g:' .. extra); touch(base .. ':gs')
  elseif op == 'leave' then
    if redis.call('HDEL', base .. ':g:' .. extra, conn) == 1 then hdecr(base .. ':gs', extra) end
  elseif op == 'rename' then
    if redis.call('HEXISTS', base .. ':c', conn) == 1 then
      redis.call('HSET', base .. ':c', conn, extra)
      hdecr(base .. ':cc', cid)
      redis.call('HINCRBY', base .. ':cc', extra, 1)
      for _, group in ipairs(redis.call('HKEYS', base .. ':gs')) do
        local key = base .. ':g:' .. group
        if redis.call('HEXISTS', key, conn) == 1 then redis.call('HSET', key, conn, extra) end
      end
    end
  end
end
for key, _ in pairs(touched) do redis.call('PEXPIRE', key, ttl) end
return 1
"""
)

REFRESH = (
    KEEP_ALIVE
    + """
-- ARGV: prefix, node, ttl_ms, reset ('1': forget this process's presence first), sessions' ttl_ms
-- ('0': leave them; else keep the sessions this process serves alive that long), and (on a
-- connect) a fresh epoch to set if there is none. Keeps this process alive for ttl_ms more,
-- and forgets processes that expired. Returns the bus counter and the epoch: the dataset's
-- identity, which a restart with its data kept (persistence, a replica) keeps and a restart
-- without it loses.
local prefix, node, ttl = ARGV[1], ARGV[2], tonumber(ARGV[3])
local base = prefix .. 'n:' .. node
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local groups = redis.call('HKEYS', base .. ':gs')
if ARGV[4] == '1' then
  for _, group in ipairs(groups) do redis.call('DEL', base .. ':g:' .. group) end
  redis.call('DEL', base .. ':c', base .. ':cc', base .. ':gs', base .. ':s')
  groups = {}
end
if ARGV[5] ~= '0' then keep_sessions(prefix, base, ARGV[5]) end
redis.call('ZADD', prefix .. 'nodes', now + ttl, node)
redis.call('ZREMRANGEBYSCORE', prefix .. 'nodes', '-inf', now)
for _, key in ipairs({base .. ':c', base .. ':cc', base .. ':gs', base .. ':s'}) do
  redis.call('PEXPIRE', key, ttl)
end
for _, group in ipairs(groups) do redis.call('PEXPIRE', base .. ':g:' .. group, ttl) end
local epoch = redis.call('GET', prefix .. 'epoch')
if not epoch and ARGV[6] then
  epoch = ARGV[6]
  redis.call('SET', prefix .. 'epoch', epoch)
end
return {redis.call('GET', prefix .. 'g') or '0', epoch or ''}
"""
)

LEAVE = """
-- ARGV: prefix, node. This process stops: its presence goes at once.
local prefix, node = ARGV[1], ARGV[2]
local base = prefix .. 'n:' .. node
for _, group in ipairs(redis.call('HKEYS', base .. ':gs')) do
  redis.call('DEL', base .. ':g:' .. group)
end
redis.call('DEL', base .. ':c', base .. ':cc', base .. ':gs', base .. ':s')
redis.call('ZREM', prefix .. 'nodes', node)
return 1
"""

READ = (
    _LIVE_NODES
    + """
-- ARGV: prefix, what (count, clients, members, size, online), argument (group or client id).
local prefix, what, arg = ARGV[1], ARGV[2], ARGV[3]
local total, seen, out = 0, {}, {}
for _, node in ipairs(live_nodes(prefix)) do
  local base = prefix .. 'n:' .. node
  if what == 'count' then
    total = total + redis.call('HLEN', base .. ':c')
  elseif what == 'size' then
    total = total + redis.call('HLEN', base .. ':g:' .. arg)
  elseif what == 'online' then
    if redis.call('HEXISTS', base .. ':cc', arg) == 1 then return 1 end
  else
    local ids
    if what == 'clients' then ids = redis.call('HKEYS', base .. ':cc')
    else ids = redis.call('HVALS', base .. ':g:' .. arg) end
    for _, id in ipairs(ids) do
      if not seen[id] then seen[id] = true; out[#out + 1] = id end
    end
  end
end
if what == 'clients' or what == 'members' then return out end
return total
"""
)
