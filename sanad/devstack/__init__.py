"""The local development stack that `make run` starts: a MongoDB-wire server and every process."""
