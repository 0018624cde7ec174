module mediachain.local/e2e/pause

go 1.23.0
