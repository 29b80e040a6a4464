"""The training job; imports only torch, numpy and the standard library so it runs on a GPU box."""
