#!/usr/bin/env bash
# Vendor GraphiQL (UMD build) and its React runtime into assets/graphiql/ so the
# GraphiQL page works without internet access. The Rust server embeds every file
# in assets/graphiql/ and serves it at /graphiql/<filename>.
#
# Usage: scripts/update-graphiql.sh        (needs node/npm and access to the npm registry)
#
# To upgrade, change the pinned versions below, re-run, check the page, commit.
set -euo pipefail

# --- pinned versions ---------------------------------------------------------
# graphiql 3.9.0 is the last 3.x release and ships the UMD bundle
# (graphiql.min.js / graphiql.min.css) that expects window.React / window.ReactDOM.
# (graphiql 5.x no longer ships a UMD bundle.)
GRAPHIQL_VERSION="3.9.0"
# react 18.3.1 is the last 18.x release; React 19 no longer ships umd/ builds.
REACT_VERSION="18.3.1"
REACT_DOM_VERSION="18.3.1"
# -----------------------------------------------------------------------------

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
dest="${repo_root}/assets/graphiql"

command -v npm >/dev/null 2>&1 || { echo "error: npm is required" >&2; exit 1; }
if command -v sha256sum >/dev/null 2>&1; then
  sha256() { sha256sum "$1" | cut -d' ' -f1; }
else
  sha256() { shasum -a 256 "$1" | cut -d' ' -f1; }
fi

work="$(mktemp -d)"
trap 'rm -rf "${work}"' EXIT

# fetch_pkg NAME VERSION -> extracts the tarball into ${work}/NAME/package
fetch_pkg() {
  local name="$1" version="$2" tarball
  mkdir -p "${work}/${name}"
  tarball="$(cd "${work}/${name}" && npm pack --silent "${name}@${version}" | tail -n1)"
  tar -xzf "${work}/${name}/${tarball}" -C "${work}/${name}"
  echo "fetched ${name}@${version} (${tarball})" >&2
}

# copy SRC DEST_NAME (fails loudly if SRC is missing)
copy() {
  local src="$1" name="$2"
  if [[ ! -f "${src}" ]]; then
    echo "error: expected file not found in package: ${src#"${work}"/}" >&2
    exit 1
  fi
  cp "${src}" "${dest}/${name}"
}

fetch_pkg graphiql  "${GRAPHIQL_VERSION}"
fetch_pkg react     "${REACT_VERSION}"
fetch_pkg react-dom "${REACT_DOM_VERSION}"

mkdir -p "${dest}"

copy "${work}/graphiql/package/graphiql.min.js"                "graphiql.min.js"
copy "${work}/graphiql/package/graphiql.min.css"               "graphiql.min.css"
copy "${work}/react/package/umd/react.production.min.js"       "react.production.min.js"
copy "${work}/react-dom/package/umd/react-dom.production.min.js" "react-dom.production.min.js"
copy "${work}/graphiql/package/LICENSE"                        "LICENSE.graphiql"
copy "${work}/react/package/LICENSE"                           "LICENSE.react"
copy "${work}/react-dom/package/LICENSE"                       "LICENSE.react-dom"

# Sanity check: the UMD bundle must define the GraphiQL global.
if ! grep -q '\.GraphiQL=' "${dest}/graphiql.min.js"; then
  echo "error: graphiql.min.js does not look like a UMD build defining the GraphiQL global" >&2
  exit 1
fi

{
  echo "# Vendored by scripts/update-graphiql.sh -- do not edit by hand."
  echo "# Served by session-manager at /graphiql/<filename>."
  echo
  echo "graphiql ${GRAPHIQL_VERSION}"
  echo "react ${REACT_VERSION}"
  echo "react-dom ${REACT_DOM_VERSION}"
  echo
  echo "# sha256  file  (source)"
  for entry in \
    "graphiql.min.js:graphiql@${GRAPHIQL_VERSION}/graphiql.min.js" \
    "graphiql.min.css:graphiql@${GRAPHIQL_VERSION}/graphiql.min.css" \
    "react.production.min.js:react@${REACT_VERSION}/umd/react.production.min.js" \
    "react-dom.production.min.js:react-dom@${REACT_DOM_VERSION}/umd/react-dom.production.min.js" \
    "LICENSE.graphiql:graphiql@${GRAPHIQL_VERSION}/LICENSE" \
    "LICENSE.react:react@${REACT_VERSION}/LICENSE" \
    "LICENSE.react-dom:react-dom@${REACT_DOM_VERSION}/LICENSE"; do
    file="${entry%%:*}"
    src="${entry#*:}"
    echo "$(sha256 "${dest}/${file}")  ${file}  (${src})"
  done
} > "${dest}/VERSIONS"

echo "updated ${dest}:" >&2
cat "${dest}/VERSIONS" >&2
