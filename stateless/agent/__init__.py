"""The host-side boot agent: find a server over DNS, send the birth message, follow one referral.

It runs on the host's own Python with the standard library and dnspython only, and ships as a
zipapp (`stateless.agent.bundle.build_zipapp`), so nothing here may import the rest of the
project.
"""

__version__ = "0.1.0"
