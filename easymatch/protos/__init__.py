"""Generated protobuf modules of the pipeline config (tools/gen_protos.py)."""
