-- Limits failed logins to the team's MLflow server (scripts/nginx/tracking.conf): a 401 from
-- MLflow to a request that carried basic-auth credentials is a failed login, counted per client
-- address and username for a window of $window_s seconds from the first one. Past $max_failures
-- the username is refused from that address (429, Retry-After: the rest of the window), the right
-- password too, so guessing stops; other users and addresses are not affected. An address past
-- 4 x $max_failures failures (one guess for each of many usernames) is refused whatever the name.
local cjson = require("cjson.safe")

local M = {}
local counts = ngx.shared.failed_logins

local function username()
    local header = ngx.var.http_authorization
    if header == nil then
        return nil
    end
    local token = string.match(header, "^%s*[Bb]asic%s+(%S+)")
    local decoded = token and ngx.decode_base64(token)
    if decoded == nil then
        return nil
    end
    return string.match(decoded, "^([^:]*)") or ""
end

local function keys()
    local name = username()
    if name == nil then
        return nil
    end
    local address = ngx.var.remote_addr
    return address .. "\0" .. name, address, name
end

local function locked(key, limit)
    local failures = counts:get(key)
    if failures == nil or failures < limit then
        return nil
    end
    local left = counts:ttl(key) or tonumber(ngx.var.window_s)
    return math.max(1, math.ceil(left))
end

function M.refuse_if_locked()
    local key, address, name = keys()
    if key == nil then
        return -- no credentials: MLflow asks for them (401), which is no failed login
    end
    local limit = tonumber(ngx.var.max_failures)
    local wait_user = locked(key, limit)
    local wait_address = locked(address, 4 * limit)
    local wait = math.max(wait_user or 0, wait_address or 0)
    if wait == 0 then
        return
    end
    local whom = wait_user and ("for user '" .. name .. "' from " .. address) or ("from " .. address)
    ngx.status = 429
    ngx.header["Retry-After"] = tostring(wait)
    ngx.header["Content-Type"] = "application/json"
    ngx.say(cjson.encode({
        error_code = "REQUEST_LIMIT_EXCEEDED",
        message = "too many failed logins " .. whom .. ": retry in " .. wait .. " s",
    }))
    return ngx.exit(429)
end

function M.count_failure()
    if ngx.status ~= 401 then
        return
    end
    local key, address = keys()
    if key == nil then
        return
    end
    local window = tonumber(ngx.var.window_s)
    counts:incr(key, 1, 0, window)
    counts:incr(address, 1, 0, window)
end

return M
