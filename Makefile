# The two commands a new user needs:
#
#	make run    builds ./caddy and runs the gateway on Caddyfile.example:
#	            memory dedupe, demo app included
#	make test   every test; installs redis-server first when it is missing
#
# Demo secrets, used only when the variables are unset: never in production.
export WAZERA_SECRET  ?= demo-wazera-secret
export ZAVU_SECRET    ?= whsec_demo-zavu-secret
export WASTACK_SECRET ?= demo-wastack-secret
export WAZAPIN_SECRET ?= whsec_ZGVtby13YXphcGluLXNlY3JldA==
export VOBIZ_SECRET   ?= demo-vobiz-secret

GO ?= go

.PHONY: run build test fuzz bench faults load

run: build
	./caddy run --config Caddyfile.example --adapter caddyfile

# The first build downloads and compiles Caddy and its modules, which
# takes minutes: say so before it starts rather than sit silent.
build:
	@if [ -x caddy ]; then echo "building ./caddy (Caddy with this module)"; \
	else echo "building ./caddy (the first build downloads and compiles Caddy: about 5 minutes on 2 cores)..."; fi
	$(GO) build -o caddy ./cmd/caddy

test:
	scripts/test

# Each fuzz target for FUZZTIME (default 1m).
FUZZTIME ?= 1m
fuzz:
	scripts/fuzz $(FUZZTIME)

bench:
	$(GO) test -run '^$$' -bench . -benchmem ./verify/ ./dedupe/

# The fault drills at full size (go test ./... runs them short).
faults:
	scripts/faults

# The side-by-side load tool over its whole matrix (bench/load).
load:
	$(GO) run ./bench/load -matrix
