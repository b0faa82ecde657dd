"""Every request limit, in one place: the server checks requests against these before any
work, the SDK sizes its batches by them, and the messages quote them.

Why each bound exists is said beside it; the reply bound is what stops one request from
asking the server to build more than a client could ever read.
"""

from __future__ import annotations

# ---- collections ----
MAX_NAME_CHARS = 128  # collection names: [A-Za-z0-9][A-Za-z0-9_.-]{0,127}
NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,127}$"
MAX_DIM = 4096
MAX_SHARDS = 64
MAX_FEEDBACK_SHOWN = 1000  # ids shown in one feedback event (a results page, not a collection)
MAX_FEEDBACK_PAGE = 1000  # feedback events per ListFeedback page
FEEDBACK_PAGE_BYTES = 32 * 1024 * 1024  # a ListFeedback page stops early at about this size (1000 events of
#                                         1000 long ids each would not fit a message)
MAX_REPLICAS = 5  # copies of each shard (Qdrant's replication_factor, Milvus's replica number); each costs a full copy
MAX_LEAVES = 100_000
MAX_OVERSAMPLE = 64
MAX_REBUILD_THRESHOLD = 10_000_000
MIN_INDEX_SIZE = 64
MAX_INDEX_SIZE = 10_000_000
MAX_DIMS_PER_BLOCK = 8

# ---- points ----
MAX_BATCH = 100_000  # ids per upsert / delete / get
MAX_ID_CHARS = 256  # one id, in characters
MAX_ID_BYTES = 1024  # one id, in UTF-8 bytes (256 characters of up to 4 bytes)
MAX_SQUARED_NORM = 1e30  # far beyond real embeddings; larger values overflow ScaNN's float32 training
MIN_COSINE_SQUARED_NORM = 1e-30  # below this a float32 normalisation is not finite
MAX_PAYLOAD_BYTES = 64 * 1024  # one point's payload, as canonical JSON in UTF-8 (Qdrant and Milvus cap theirs too)
MAX_PAYLOAD_KEYS = 256  # fields in one payload
MAX_PAYLOAD_KEY_CHARS = 256  # one field name
MAX_PAYLOAD_LIST = 1024  # values in one list-valued field
INT64_RANGE = (-(2**63), 2**63 - 1)  # integer payload values (and filter values) are int64

# ---- filters (contract/filters.py) ----
# Checked in one pass over the filter's structure before any value is read, so a hostile filter
# costs at most about this much work and a bounded stack.
MAX_FILTER_DEPTH = 32  # nested $and/$or/$not levels (a dict of several conditions is one); a left-deep
#                        builder chain of 33 conditions fits, and the deepest legal Filter message stays
#                        well inside protobuf's own recursion limit of 100 on decode
MAX_FILTER_CONDITIONS = 1024  # field conditions in one filter
MAX_FILTER_IN_VALUES = 10_000  # values in all of one filter's $in/$nin lists together (Pinecone's per-list cap)
MAX_FIELD_NAME_CHARS = MAX_PAYLOAD_KEY_CHARS  # a filter can name every field a payload may hold

MAX_SCROLL_LIMIT = 10_000  # points per Scroll page

# ---- search ----
MAX_K = 1024
MAX_QUERIES = 10_000  # queries per search
MAX_RESULTS = 1_000_000  # k x queries: the rows of one reply (a full reply is ~30 MB of ids and scores)
# The id size a reply estimate assumes when the caller does not know the collection's longest
# id: a UUID's 36 characters. With it, MAX_RESULTS hits (~42 MB) fit the message limit, so
# MAX_RESULTS is the binding bound; with a collection's real longest id the reply bound can bite.
ASSUMED_ID_BYTES = 36
MAX_TIMEOUT_MS = 600_000  # a search's params.timeout_ms
DEFAULT_TIMEOUT_S = 30.0  # a call with no deadline of its own

# ---- raw inputs (server-side embedding) ----
# An encoder reference: "name", "name@latest" or "name@<version>" (encoder/registry.py's names)
MODEL_REF_PATTERN = r"[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}(@(latest|[0-9]{1,9}))?"
MAX_REF_CHARS = 74
MAX_RAW_ITEMS = 4096  # texts or images per request
MAX_TEXT_CHARS = 8192  # MiniLM reads 256 tokens; far longer input is a client bug

# ---- transport ----
MAX_MESSAGE_BYTES = 64 * 1024 * 1024  # one request or reply
UPSERT_TARGET_BYTES = 8 * 1024 * 1024  # the SDK cuts bulk upserts into requests of about this size
MAX_ECHO_CHARS = 48  # an error message quotes at most this much of a client's input


def longest_utf8(ids) -> int:
    """The longest string's size in UTF-8 bytes, the measure MAX_ID_BYTES bounds. All-ASCII ids (the
    usual case) are measured by their lengths alone, without encoding each one."""
    if not ids:
        return 0
    if "".join(ids).isascii():
        return max(map(len, ids))
    return max(len(x.encode("utf-8", "surrogatepass")) for x in ids)
