#!/usr/bin/env bash
# Refresh the vendored browser assets from npm (versions pinned in package.json / package-lock.json).
# Why vendored: the built book must draw figures and widgets with no network, so these files are
# committed and `make book` never calls npm. plotly.min.js is not here: the book copies it from the
# installed plotly package at build time, so it always matches the Python package.
set -euo pipefail
cd "$(dirname "$0")/../.."
npm ci --ignore-scripts --no-audit --no-fund
vendor=book/_vendor
manager=node_modules/@jupyter-widgets/html-manager/dist
rm -rf "$vendor/html-manager" && mkdir -p "$vendor/html-manager"
cp node_modules/requirejs/require.js "$vendor/require.js"
# embed-amd.js loads Font Awesome from next to itself; every browser the book targets takes woff2.
cp "$manager/embed-amd.js" "$manager"/*.woff2 "$vendor/html-manager/"
# MathJax for the formulas: the combined TeX component, its fonts and the TeX extensions it autoloads.
mathjax=node_modules/mathjax/es5
rm -rf "$vendor/mathjax" && mkdir -p "$vendor/mathjax/output/chtml/fonts" "$vendor/mathjax/input/tex"
cp "$mathjax/tex-mml-chtml.js" "$vendor/mathjax/"
cp -r "$mathjax/output/chtml/fonts/woff-v2" "$vendor/mathjax/output/chtml/fonts/"
cp -r "$mathjax/input/tex/extensions" "$vendor/mathjax/input/tex/"
echo "vendored: require.js $(node -p 'require("requirejs/package.json").version'), html-manager $(node -p 'require("@jupyter-widgets/html-manager/package.json").version'), mathjax $(node -p 'require("mathjax/package.json").version')"
