"""The regional vendor side: signed webhooks out, and the check a vendor runs on them."""
