#!/usr/bin/env bash
# Bootstrap of the docker compose fleet (the `bootstrap` service of docker-compose.yml), the
# same steps as scripts/dev-up: tenant "demo" with a super-admin API key, and an Odoo
# connection named "Odoo sandbox" pointing at bac-sandbox. Idempotent: a key that the gateway
# still accepts is reused, an existing sandbox connection is kept (its password is written
# back to OpenBao when a dev-mode restart lost it).
#
# Runs inside the fleet image (bash + the bac binaries, no curl): HTTP goes through bash's
# /dev/tcp. Environment: the gateway's (BAC_DATABASE_URL, BAC_VAULT_ADDR, BAC_VAULT_TOKEN ...),
# which `bac-gateway bootstrap` needs anyway.
#
# Usage: bootstrap.sh GATEWAY_URL SANDBOX_URL [STATE_DIR]
# (URLs as seen from inside the compose network; STATE_DIR keeps the API key, default
# /var/lib/bac, the bootstrap-data volume)
set -euo pipefail

gateway=${1:?usage: bootstrap.sh GATEWAY_URL SANDBOX_URL}
sandbox=${2:?usage: bootstrap.sh GATEWAY_URL SANDBOX_URL}
state_dir=${3:-/var/lib/bac}
key_file=$state_dir/api-key

log() { printf '[bootstrap] %s\n' "$*" >&2; }
die() {
  printf '[bootstrap] ERROR: %s\n' "$*" >&2
  exit 1
}

# http METHOD URL [BODY] [HEADER]: one HTTP/1.0 request; sets HTTP_STATUS and HTTP_BODY.
# HTTP/1.0 keeps the answer unchunked and the connection closed after it.
http() {
  local method=$1 url=$2 body=${3:-} header=${4:-}
  local rest=${url#http://}
  local hostport=${rest%%/*} path="/${rest#*/}"
  local host=${hostport%%:*} port=80
  [[ $hostport == *:* ]] && port=${hostport##*:}
  local -a headers=("Host: $hostport" "Content-Type: application/json" "Content-Length: ${#body}")
  [[ -n $header ]] && headers+=("$header")
  local response
  exec 3<>"/dev/tcp/$host/$port"
  {
    printf '%s %s HTTP/1.0\r\n' "$method" "$path"
    printf '%s\r\n' "${headers[@]}"
    printf '\r\n%s' "$body"
  } >&3
  response=$(cat <&3 || true)
  exec 3<&- 3>&-
  local status_line=${response%%$'\r'*}
  read -r _ HTTP_STATUS _ <<<"$status_line"
  HTTP_STATUS=${HTTP_STATUS:-000}
  HTTP_BODY=${response#*$'\r\n\r\n'}
}

auth() { printf 'Authorization: Bearer %s' "$1"; }

key_works() {
  [[ -n $1 ]] || return 1
  http GET "$gateway/api/v1/integrations/connections" "" "$(auth "$1")"
  [[ $HTTP_STATUS == 200 ]]
}

# --- API key ---------------------------------------------------------------------------
key=""
[[ -r $key_file ]] && key=$(<"$key_file")
if key_works "$key"; then
  log "the API key in $key_file still works; not bootstrapping again"
else
  log "bac-gateway bootstrap --tenant demo (admin@demo.local)"
  key=$(bac-gateway bootstrap --tenant demo --tenant-name "Demo Company" --email admin@demo.local)
  key=${key//[[:space:]]/}
  [[ -n $key ]] || die "bac-gateway bootstrap printed no API key"
  (umask 077 && printf '%s\n' "$key" >"$key_file")
  key_works "$key" || die "the gateway rejects the key bac-gateway bootstrap printed (HTTP $HTTP_STATUS)"
  log "new super-admin API key created"
fi

# --- Odoo sandbox connection ------------------------------------------------------------
http GET "$gateway/api/v1/integrations/connections" "" "$(auth "$key")"
[[ $HTTP_STATUS == 200 ]] || die "listing connections failed (HTTP $HTTP_STATUS): $HTTP_BODY"
connection_id=""
# The list holds flat objects: {"created_at":..,"id":..,"integration":..,"name":..}.
sp='[[:space:]]*'
while read -r object; do
  if [[ $object =~ \"integration\"$sp:$sp\"odoo\" && $object =~ \"name\"$sp:$sp\"Odoo\ sandbox\" ]]; then
    connection_id=$(grep -oE "\"id\"$sp:$sp\"[^\"]*\"" <<<"$object" | head -n1 | sed -E 's/.*"([^"]*)"$/\1/')
    break
  fi
done < <(grep -o '{[^{}]*}' <<<"$HTTP_BODY" || true)

if [[ -z $connection_id ]]; then
  log "creating the Odoo connection to $sandbox"
  http POST "$gateway/api/v1/integrations/connections" \
    "{\"integration\":\"odoo\",\"name\":\"Odoo sandbox\",\"config\":{\"url\":\"$sandbox\",\"database\":\"demo\",\"username\":\"admin\"},\"credentials\":{\"password\":\"admin\"}}" \
    "$(auth "$key")"
  [[ $HTTP_STATUS == 200 || $HTTP_STATUS == 201 ]] ||
    die "creating the Odoo connection failed (HTTP $HTTP_STATUS): $HTTP_BODY"
  log "Odoo connection created: $HTTP_BODY"
else
  http POST "$gateway/api/v1/integrations/connections/$connection_id/test" "" "$(auth "$key")"
  if [[ $HTTP_STATUS == 200 && $HTTP_BODY =~ \"ok\"$sp:$sp"true" ]]; then
    log "the Odoo sandbox connection $connection_id exists and works"
  else
    # Dev-mode OpenBao keeps secrets in memory: put the sandbox password back.
    log "connection $connection_id does not test ok (HTTP $HTTP_STATUS); restoring its password in OpenBao"
    http POST "${BAC_VAULT_ADDR%/}/v1/secret/data/bac/demo/odoo/$connection_id" \
      '{"data":{"password":"admin"}}' "X-Vault-Token: ${BAC_VAULT_TOKEN:?}"
    [[ $HTTP_STATUS == 200 || $HTTP_STATUS == 204 ]] ||
      die "restoring the sandbox password in OpenBao failed (HTTP $HTTP_STATUS)"
  fi
fi

# --- what to paste into a shell (the names of scripts/dev-up's .dev/env) ------------------
cat <<EOF
# the compose fleet is up; paste these lines into your shell:
export BAC_GATEWAY_URL=http://127.0.0.1:8080
export BAC_API_KEY=$key
export KAFKA_BROKERS=127.0.0.1:9094
export VAULT_ADDR=http://127.0.0.1:8200
export VAULT_TOKEN=${BAC_VAULT_TOKEN}
EOF
