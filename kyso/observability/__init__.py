"""What an operator watches: Prometheus metrics, JSON logs, liveness and readiness."""
