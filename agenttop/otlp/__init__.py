"""The wire side: OTLP decoding into storable rows, and the gRPC servicers."""
