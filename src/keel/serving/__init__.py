"""Online serving: endpoints bound to deployment revisions, the request path, the prediction log."""
