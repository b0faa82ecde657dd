"""Ray: starting/joining a cluster and the actor facades that host shards."""
