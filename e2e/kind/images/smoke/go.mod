module mediachain.local/e2e/smoke

go 1.23.0
