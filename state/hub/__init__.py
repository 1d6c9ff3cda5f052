"""The Redis hub (design §11): where host agents publish and fleet dashboards read.

``connection`` turns a URL into a client with one-line errors, ``schema`` holds
the key layout and every read and write (Lua compare-and-set, the change stream,
leases), ``codec`` turns records into hub text and back (untrusted on the way in).
"""
