"""A project given by Git URL: the URL's rules (url.py, pure) and its clone and work trees in
the user cache (checkout.py)."""
