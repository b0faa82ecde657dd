"""Metric-learning encoders (see the issue "Metric-learning encoders"); empty until then."""
