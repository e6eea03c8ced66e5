"""Mesh geometry: the cotangent Laplacian, geodesic handles and the dependency matrix's
initialisation, procedural primitives and the project's demo template."""
