// fixture: a valid base header
