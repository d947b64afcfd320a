"""Pure codecs: bytes <-> records. Imports nothing else of the project but errors.

Everything that knows a byte of a Lithair data directory lives here, so the
engine (writer) and the frames (reader) share one implementation.
"""
