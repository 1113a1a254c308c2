"""easymatch.serve: a model server speaking TF Serving's gRPC and REST APIs
over easymatch exports (docs/serving.md)."""
