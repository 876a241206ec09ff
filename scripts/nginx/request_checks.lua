-- Checks a POST /invocations body before MLflow's scoring server parses it (nginx's access
-- phase; scripts/nginx/serve.conf). MLflow answers a missing Content-Type and JSON nested past
-- Python's recursion limit with HTTP 500, and drops unknown params silently (it keeps only
-- those of the model's signature): here each is a 4xx whose message says why.
local cjson = require("cjson.safe")

local M = {}

-- Legitimate bodies nest 4 deep ({"dataframe_split": {"data": [["..."]]}}).
M.MAX_DEPTH = 16
M.INPUT_KEYS = { "dataframe_records", "dataframe_split", "instances", "inputs" }

local decoder = cjson.new()
decoder.decode_max_depth(M.MAX_DEPTH)

local function refuse(status, code, message)
    ngx.status = status
    ngx.header["Content-Type"] = "application/json"
    ngx.say(cjson.encode({ error_code = code, message = message }))
    return ngx.exit(status)
end

local function split(list)
    local names, set = {}, {}
    for name in string.gmatch(list or "", "[^,]+") do
        names[#names + 1] = name
        set[name] = true
    end
    return names, set
end

local function unknown_keys(object, allowed)
    local unknown = {}
    for key, _ in pairs(object) do
        if type(key) ~= "string" or not allowed[key] then
            unknown[#unknown + 1] = "'" .. tostring(key) .. "'"
        end
    end
    table.sort(unknown)
    return unknown
end

local function is_object(value)
    -- cjson decodes both {} and [] to tables; an array has key 1 (or is empty, which is fine).
    return type(value) == "table" and value[1] == nil
end

function M.check(accepted_params)
    local content_type = ngx.var.content_type
    if content_type == nil or content_type == "" then
        return refuse(415, "BAD_REQUEST", "the request has no Content-Type header: send "
            .. "'Content-Type: application/json' (or text/csv, application/vnd.apache.parquet)")
    end
    local mime = string.lower(string.match(content_type, "^%s*([^;%s]+)") or "")
    if mime ~= "application/json" then
        return -- MLflow reads CSV and Parquet itself, and refuses other types with 415
    end
    ngx.req.read_body()
    local body = ngx.req.get_body_data()
    if body == nil then
        return refuse(400, "BAD_REQUEST", "the request has no body: send a JSON object such as "
            .. '{"dataframe_records": [{"prompt": "fair is foul"}]}')
    end
    local value, problem = decoder.decode(body)
    if value == nil then
        if string.find(problem, "too many nested", 1, true) then
            return refuse(400, "BAD_REQUEST", "the JSON body is nested more than "
                .. M.MAX_DEPTH .. " levels deep")
        end
        return refuse(400, "BAD_REQUEST", "the body is not valid JSON: " .. problem)
    end
    if not is_object(value) then
        return refuse(400, "BAD_REQUEST", "the body must be a JSON object with one of the keys "
            .. table.concat(M.INPUT_KEYS, ", ") .. " (and optionally params)")
    end
    local allowed = { params = true }
    for _, key in ipairs(M.INPUT_KEYS) do
        allowed[key] = true
    end
    local unknown = unknown_keys(value, allowed)
    if #unknown > 0 then
        return refuse(400, "BAD_REQUEST", "unknown key " .. table.concat(unknown, ", ")
            .. " in the body; accepted: " .. table.concat(M.INPUT_KEYS, ", ") .. ", params")
    end
    local params = value.params
    if params == nil or params == cjson.null then
        return
    end
    if not is_object(params) then
        return refuse(400, "INVALID_PARAMETER_VALUE", "params must be a JSON object")
    end
    local names, known = split(accepted_params)
    unknown = unknown_keys(params, known)
    if #unknown > 0 then
        local accepted = #names > 0 and table.concat(names, ", ") or "none (the model takes no params)"
        return refuse(400, "INVALID_PARAMETER_VALUE", "unknown param " .. table.concat(unknown, ", ")
            .. "; accepted: " .. accepted)
    end
end

return M
