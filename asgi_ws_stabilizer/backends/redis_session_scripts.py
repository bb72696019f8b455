"""The Redis backend's session steps, one Lua script each (see redis_scripts.py for the bus).

A resumable session lives in Redis, so that its client resumes on any process, also after the
process that served it was killed. Keys, all under ``<prefix>:``:

* ``s:<sid>`` (hash): ``c`` client id, ``n`` the serving process (empty while the client is
  away), ``k`` its socket's connection id, ``sent`` (data messages sent in the session: the last
  one's number), ``first`` (the number of the oldest still in the log), ``bytes`` (payload bytes
  in the log), ``off`` (messages the client missed on earlier resumes) and ``ud`` (user data,
  JSON);
* ``s:<sid>:l`` (list): the log, one entry per data message (a type byte ``t``/``b``, then the
  payload), bounded by ``resume_buffer_size`` payload bytes, oldest dropped first: the same
  rule as the in-process ``ResumeBuffer``, so ``missed`` is as exact in both;
* ``s:<sid>:g`` (set): its groups;
* ``S``, ``sg:<group>``, ``sc:<client id>`` (sets of session ids): who a broadcast, a group send
  and a client send reach; a member whose session expired is removed when met;
* ``n:<node>:s`` (set): the sessions a process serves; it keeps them alive (``PEXPIRE``) while
  it lives, and they expire ``session_ttl`` after their client left, or, when the process was
  killed, between 1.5 and 2 times ``session_ttl`` after its last refresh;
* ``t:<nonce>``: a spent token (until it would have expired anyway).

Every hub send is appended to the logs of the sessions it reaches by the bus's PUBLISH script
itself (``APPEND``), in the order of the bus; the bus entry names, for each process that serves
some of them, each session and the number its message got there, so the process hands the
socket exactly what the log holds, in the same order.
"""

from __future__ import annotations

_LOG = """
-- Pushes message number `sent` (a type byte, then the payload of `size` bytes) onto session
-- `s`'s log, then drops the oldest while the log holds more than `limit` payload bytes: the
-- in-process ResumeBuffer's rule, so `missed` is as exact. Returns the log's first number and
-- its bytes afterwards. A log made here lives as long as its session.
local function log_push(s, frame, size, sent, first, bytes, limit)
  local log = s .. ':l'
  if redis.call('RPUSH', log, frame) == 1 then
    local ttl = redis.call('PTTL', s)
    if ttl > 0 then redis.call('PEXPIRE', log, ttl) end
  end
  bytes = bytes + size
  while bytes > limit do
    local old = redis.call('LPOP', log)
    if not old then return sent + 1, 0 end
    bytes = bytes - (string.len(old) - 1)
    first = first + 1
  end
  return first, bytes
end
"""

APPEND = (
    _LOG
    + """
-- Appends the frame to every session the send reaches; returns how many, and fills `listed`
-- (node -> {"sid seq", ...}) for the sessions a process serves now.
local function append_sessions(prefix, kind, target, excluded, owner, frame, size, limit, listed)
  local index, sids = nil, nil
  if kind == 'all' then index = prefix .. 'S'
  elseif kind == 'group' then index = prefix .. 'sg:' .. target
  elseif kind == 'client' then index = prefix .. 'sc:' .. target
  elseif kind == 'session' then sids = {target}
  else return 0 end
  if index then sids = redis.call('SMEMBERS', index) end
  local appended = 0
  for _, sid in ipairs(sids) do
    local s = prefix .. 's:' .. sid
    local f = redis.call('HMGET', s, 'c', 'k', 'n', 'sent', 'first', 'bytes')
    if not f[1] then
      if index then redis.call('SREM', index, sid) end
    elseif (owner and f[2] == owner) or (not owner and not excluded[f[1]]
        and not (f[2] and excluded[f[2]])) then
      local sent = tonumber(f[4]) + 1
      local first, bytes = log_push(s, frame, size, sent, tonumber(f[5]), tonumber(f[6]), limit)
      redis.call('HSET', s, 'sent', sent, 'first', first, 'bytes', bytes)
      appended = appended + 1
      if f[3] and f[3] ~= '' then
        local l = listed[f[3]]
        if not l then l = {}; listed[f[3]] = l end
        l[#l + 1] = sid .. ' ' .. sent
      end
    end
  end
  return appended
end
"""
)

_KEEP = """
local function keep(prefix, sid, ttl)
  local s = prefix .. 's:' .. sid
  redis.call('PEXPIRE', s, ttl)
  redis.call('PEXPIRE', s .. ':l', ttl)
  redis.call('PEXPIRE', s .. ':g', ttl)
end
local function index(prefix, sid, cid, ttl)
  for _, key in ipairs({prefix .. 'S', prefix .. 'sc:' .. cid}) do
    redis.call('SADD', key, sid)
    if redis.call('PTTL', key) < tonumber(ttl) then redis.call('PEXPIRE', key, ttl) end
  end
end
local function join(prefix, sid, group, ttl)
  redis.call('SADD', prefix .. 's:' .. sid .. ':g', group)
  local left = redis.call('PTTL', prefix .. 's:' .. sid)
  if left > 0 then redis.call('PEXPIRE', prefix .. 's:' .. sid .. ':g', left) end
  local key = prefix .. 'sg:' .. group
  redis.call('SADD', key, sid)
  if redis.call('PTTL', key) < tonumber(ttl) then redis.call('PEXPIRE', key, ttl) end
end
"""

CREATE = (
    _KEEP
    + """
-- ARGV: prefix, session id, client id, node, connection id, ttl_ms (while served).
local prefix, sid, cid, node, conn, ttl = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6]
local s = prefix .. 's:' .. sid
redis.call('DEL', s, s .. ':l', s .. ':g')
redis.call('HSET', s, 'c', cid, 'n', node, 'k', conn, 'sent', 0, 'first', 1, 'bytes', 0,
  'off', 0, 'ud', '{}')
keep(prefix, sid, ttl)
index(prefix, sid, cid, ttl)
redis.call('SADD', prefix .. 'n:' .. node .. ':s', sid)
return 1
"""
)

RESUME = """
-- ARGV: prefix, session id, token nonce, nonce ttl_ms, received, node, connection id,
-- ttl_ms (while served), dry ('1': decide only, change nothing), the bus's maxlen.
-- Returns {reason} when refused; dry: {'ok', client id, node, connection id}; else {'ok',
-- client id, user data, old node, old connection id, sent, missed, off, groups (newline-
-- separated), replayed frames...}. The old socket, served elsewhere, is told on the bus to close
-- 4409 (in the same step, so nothing falls between).
local prefix, sid = ARGV[1], ARGV[2]
local s = prefix .. 's:' .. sid
local f = redis.call('HMGET', s, 'c', 'sent', 'first', 'off', 'n', 'k', 'ud')
if not f[1] then return {'session_unknown'} end
local spent = prefix .. 't:' .. ARGV[3]
if redis.call('EXISTS', spent) == 1 then return {'token_spent'} end
local sent, first, off = tonumber(f[2]), tonumber(f[3]), tonumber(f[4])
local need = tonumber(ARGV[5]) + off
if need > sent then return {'seq_ahead'} end
local old_node, old_conn = f[5] or '', f[6] or ''
if ARGV[9] == '1' then return {'ok', f[1], old_node, old_conn} end
redis.call('SET', spent, '1', 'PX', ARGV[4])
local node, conn, ttl = ARGV[6], ARGV[7], ARGV[8]
local missed, replay = 0, {}
if need < sent then
  missed = math.max(0, first - need - 1)
  replay = redis.call('LRANGE', s .. ':l', math.max(need + 1, first) - first, -1)
end
off = off + missed
redis.call('HSET', s, 'off', off, 'n', node, 'k', conn)
if old_node ~= '' and old_node ~= node then
  redis.call('SREM', prefix .. 'n:' .. old_node .. ':s', sid)
  if old_conn ~= '' then
    local g = redis.call('INCR', prefix .. 'g')
    local header = '["kick",' .. cjson.encode(old_conn)
      .. ',[],"t",4409,"replaced by a newer connection of the same session"]'
    redis.call('XADD', prefix .. 'bus', 'MAXLEN', '~', ARGV[10], g .. '-0',
      'h', header, 'p', '', 'n', '', 'q', '0')
  end
end
redis.call('SADD', prefix .. 'n:' .. node .. ':s', sid)
for _, key in ipairs({s, s .. ':l', s .. ':g'}) do redis.call('PEXPIRE', key, ttl) end
local groups = table.concat(redis.call('SMEMBERS', s .. ':g'), '\\n')
local out = {'ok', f[1], f[7] or '{}', old_node, old_conn, sent, missed, off, groups}
for _, frame in ipairs(replay) do out[#out + 1] = frame end
return out
"""

RESTORE = (
    _KEEP
    + _LOG
    + """
-- ARGV: prefix, node, ttl_ms, resume_buffer_size, then 7 fields per session this process
-- serves: session id, client id, connection id, seq (the number of the last message its socket
-- was given), off, user data, groups (newline-separated). Run after every (re)connect: a session
-- Redis lost (restart) is made again numbered from its socket (first = seq + 1, so `missed`
-- stays exact), and the sends of the new bus that reached it while it did not exist are caught
-- up: logged and numbered now, and returned ("<entry> <sid> <seq>") so that this process hands
-- them to the socket when it reads those entries. One whose log lost its tail starts again at
-- seq; one that another socket took over meanwhile is returned (closed 4409 here).
-- Returns {sessions made again, {lost session ids}, {caught-up listings}}.
local prefix, node, ttl, limit = ARGV[1], ARGV[2], ARGV[3], tonumber(ARGV[4])
local made, lost, late = 0, {}, {}
local bus = nil
local function catch_up(sid, cid, conn, groups, seq)
  if not bus then
    bus = {}
    for _, e in ipairs(redis.call('XRANGE', prefix .. 'bus', '-', '+')) do
      local f = {}
      for j = 1, #e[2], 2 do f[e[2][j]] = e[2][j + 1] end
      local ok, h = pcall(cjson.decode, f['h'] or '')
      if ok and type(h) == 'table' and f['p'] then
        bus[#bus + 1] = {string.match(e[1], '^(%d+)'), h, f['p']}
      end
    end
  end
  local s = prefix .. 's:' .. sid
  local first, bytes = seq + 1, 0
  for _, item in ipairs(bus) do
    local h = item[2]
    local kind, target = h[1], h[2]
    local hit = kind == 'all' or (kind == 'group' and groups[target]) or
      (kind == 'client' and target == cid)
    if hit and type(h[3]) == 'table' then
      for _, x in ipairs(h[3]) do if x == cid or x == conn then hit = false end end
    end
    if hit then
      seq = seq + 1
      local frame = (h[4] or 't') .. item[3]
      first, bytes = log_push(s, frame, string.len(item[3]), seq, first, bytes, limit)
      late[#late + 1] = item[1] .. ' ' .. sid .. ' ' .. seq
    end
  end
  redis.call('HSET', s, 'sent', seq, 'first', first, 'bytes', bytes)
end
for i = 5, #ARGV, 7 do
  local sid, cid, conn, seq = ARGV[i], ARGV[i + 1], ARGV[i + 2], tonumber(ARGV[i + 3])
  local s = prefix .. 's:' .. sid
  local f = redis.call('HMGET', s, 'k', 'sent', 'c')
  if f[2] and f[1] ~= conn then
    lost[#lost + 1] = sid
  else
    if not f[2] then
      redis.call('HSET', s, 'off', ARGV[i + 4])
      made = made + 1
    end
    if not f[2] or tonumber(f[2]) < seq then
      redis.call('DEL', s .. ':l')
      redis.call('HSET', s, 'sent', seq, 'first', seq + 1, 'bytes', 0)
    end
    if f[3] and f[3] ~= cid then redis.call('SREM', prefix .. 'sc:' .. f[3], sid) end
    redis.call('HSET', s, 'c', cid, 'n', node, 'k', conn, 'ud', ARGV[i + 5])
    keep(prefix, sid, ttl)
    index(prefix, sid, cid, ttl)
    for _, group in ipairs(redis.call('SMEMBERS', s .. ':g')) do
      redis.call('SREM', prefix .. 'sg:' .. group, sid)
    end
    redis.call('DEL', s .. ':g')
    local groups = {}
    for group in string.gmatch(ARGV[i + 6], '[^\\n]+') do
      join(prefix, sid, group, ttl)
      groups[group] = true
    end
    redis.call('SADD', prefix .. 'n:' .. node .. ':s', sid)
    if not f[2] then catch_up(sid, cid, conn, groups, seq) end
    keep(prefix, sid, ttl)
  end
end
return {made, lost, late}
"""
)

OPS = (
    _KEEP
    + """
-- Session changes riding with the presence changes (4 fields each: op, session id, a, b):
-- sjoin/sleave (b: group), sren (a: old client id, b: new), sdata (a: connection id, b: user
-- data), sdetach (a: connection id, b: user data: the client left; kept for the detached ttl).
local function session_op(prefix, node, op, sid, a, b, ttl, away_ttl)
  local s = prefix .. 's:' .. sid
  if redis.call('EXISTS', s) == 0 then return end
  if op == 'sjoin' then join(prefix, sid, b, ttl)
  elseif op == 'sleave' then
    redis.call('SREM', s .. ':g', b)
    redis.call('SREM', prefix .. 'sg:' .. b, sid)
  elseif op == 'sren' then
    redis.call('HSET', s, 'c', b)
    redis.call('SREM', prefix .. 'sc:' .. a, sid)
    index(prefix, sid, b, ttl)
  elseif redis.call('HGET', s, 'k') == a then
    redis.call('HSET', s, 'ud', b)
    if op == 'sdetach' then
      redis.call('HSET', s, 'n', '', 'k', '')
      keep(prefix, sid, away_ttl)
      redis.call('SREM', prefix .. 'n:' .. node .. ':s', sid)
    end
  end
end
"""
)

KEEP_ALIVE = """
-- Keeps the sessions this process serves (and their indexes) alive, and forgets stale members
-- of the broadcast index, a sample at a time.
local function keep_sessions(prefix, base, ttl)
  ttl = tonumber(ttl)
  for _, sid in ipairs(redis.call('SMEMBERS', base .. ':s')) do
    local s = prefix .. 's:' .. sid
    if redis.call('PEXPIRE', s, ttl) == 1 then
      redis.call('PEXPIRE', s .. ':l', ttl)
      redis.call('PEXPIRE', s .. ':g', ttl)
      local keys = {prefix .. 'S', prefix .. 'sc:' .. redis.call('HGET', s, 'c')}
      for _, group in ipairs(redis.call('SMEMBERS', s .. ':g')) do
        keys[#keys + 1] = prefix .. 'sg:' .. group
      end
      for _, key in ipairs(keys) do
        if redis.call('PTTL', key) < ttl then redis.call('PEXPIRE', key, ttl) end
      end
    else
      redis.call('SREM', base .. ':s', sid)
    end
  end
  for _, sid in ipairs(redis.call('SRANDMEMBER', prefix .. 'S', 100)) do
    if redis.call('EXISTS', prefix .. 's:' .. sid) == 0 then
      redis.call('SREM', prefix .. 'S', sid)
    end
  end
end
"""
