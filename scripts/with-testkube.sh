#!/usr/bin/env bash
# with-testkube.sh CMD [ARGS...]
#
# Runs CMD with TEST_KUBECONFIG naming an admin kubeconfig of a real
# Kubernetes API server: the caller's $TEST_KUBECONFIG when set, otherwise
# etcd and kube-apiserver (package localkube) that this script starts in
# .brokkr/kube and always stops again. The binaries must have been built
# (`make kube`, once per machine). The exit status is CMD's.
set -euo pipefail
cd "$(dirname "$0")/.."

dir=.brokkr/kube
if [[ -z "${TEST_KUBECONFIG:-}" ]]; then
	${GO:-go} build -o .brokkr/testkube ./cmd/testkube
	trap '.brokkr/testkube stop "$dir"' EXIT
	start=$SECONDS
	TEST_KUBECONFIG=$(.brokkr/testkube start "$dir")
	export TEST_KUBECONFIG
	echo "Kubernetes API server for tests: $TEST_KUBECONFIG (ready in $((SECONDS - start)) s)"
fi
"$@"
