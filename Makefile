# Brokkr. `make run` and `make test` are all the setup a Debian/Ubuntu machine
# with Go needs (DESIGN §6): both install PostgreSQL first if it is missing,
# and make test headless Chromium (for the GraphiQL browser test).
GO ?= go

.PHONY: all deps kube browser build run test fmt-check vet bench generate graphiql

all: build

# PostgreSQL server binaries for the embedded default cluster (localpg).
deps:
	scripts/ensure-postgres.sh

# etcd and kube-apiserver for the kubernetes applier's tests (localkube): built
# once per machine from the Go module proxy (about 8 minutes on 2 cores, with
# progress) into ~/.cache/brokkr/kube/<versions>; afterwards this takes seconds.
kube:
	GO=$(GO) $(GO) run ./cmd/testkube build

# Headless Chromium for the GraphiQL browser test (installed when missing).
browser:
	scripts/ensure-chromium.sh

# Leaves ./brokkr: the broker, the CLI and the agent.
build:
	$(GO) build -o brokkr .

# The broker with the embedded default; ./brokkr stays for the other
# commands (./brokkr admin rotate-key, ./brokkr push, …).
run: deps build
	./brokkr serve

# Formatting, vet, then the suite with the race detector against real
# PostgreSQL ($$TEST_DATABASE_URL if set, else the embedded test cluster in
# .brokkr/test) and a real Kubernetes API server ($$TEST_KUBECONFIG if set,
# else etcd and kube-apiserver in .brokkr/kube), both stopped again at the end
# whatever the result.
test: deps kube browser fmt-check vet
	GO=$(GO) scripts/with-testpg.sh scripts/with-testkube.sh $(GO) test -race -count=1 ./...

# gofmt over the packages' directories (go list skips .brokkr, whose cluster
# directories belong to the postgres user).
fmt-check:
	@dirs=$$($(GO) list -f '{{.Dir}}' ./...) || exit 1; \
	out=$$(gofmt -l $$dirs) || exit 1; \
	if [ -n "$$out" ]; then echo "gofmt needed on:"; echo "$$out"; exit 1; fi

vet:
	$(GO) vet ./...

# Benchmarks run on a cluster with production durability (fsync on).
bench: deps
	GO=$(GO) scripts/with-testpg.sh -durable scripts/bench.sh

# gqlgen (graph/, models/models_gen.go) and the genqlient client (client/).
generate:
	$(GO) generate ./...

# Rebuilds GraphiQL's bundled third-party assets from the npm registry
# (graphiql/web pins the versions); needs node and npm, and is not part of
# build or test: the output, graphiql/assets, is committed.
graphiql:
	scripts/build-graphiql.sh
