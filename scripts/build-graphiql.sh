#!/usr/bin/env bash
# Rebuilds the GraphiQL page's third-party assets (graphiql/assets/vendor.js,
# vendor.css, media/, THIRD_PARTY.txt) from the npm registry, with the
# versions pinned in graphiql/web/package.json and package-lock.json:
# GraphiQL 3.8.3, React 18.3.1, graphql-ws 5.16.2, graphql 16.15.0, bundled
# with esbuild 0.25.12. The output is committed: go build and make test need
# neither node nor npm. Run it after changing graphiql/web/, then commit
# graphiql/assets. Needs node (>= 18) and npm.
set -euo pipefail
cd "$(dirname "$0")/.."

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cp graphiql/web/package.json graphiql/web/package-lock.json graphiql/web/vendor.js graphiql/web/build.mjs "$work/"
out=$(pwd)/graphiql/assets
(
	cd "$work"
	# Lifecycle scripts stay off: esbuild's binary comes in its optional
	# platform package (@esbuild/linux-x64 and the like).
	npm ci --ignore-scripts --no-audit --no-fund
	node build.mjs "$out"
)
echo "graphiql/assets rebuilt; commit it."
