#!/usr/bin/env bash
# Formats the Swift sources in place; `scripts/format.sh --check` fails on any difference instead.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "${1:-}" = "--check" ]; then
    swift format lint --strict --recursive --parallel Sources Tests Package.swift
else
    swift format --in-place --recursive --parallel Sources Tests Package.swift
fi
