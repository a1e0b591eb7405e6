"""S3 and its kin. Importing this package loads nothing heavy; s3fs and botocore are imported
by its modules only when a store is opened.

- `store`: `S3Store`, the `Store` for S3: HEAD and ranged GET by hand, s3fs for the rest;
- `rest`: SigV4-signed HEAD and GET over ``http.client`` (reads without s3fs);
- `ranges`: the parallel ranged reader, pinned to the object's ETag;
- `multipart`: streamed multipart uploads with several parts in flight;
- `client`: the s3fs/aiobotocore set-up;
- `credentials`: where the key id and secret come from (never printed);
- `errors`: the S3 exception table and the table of HTTP statuses (their words:
  `cacher.stores.wording`).
"""
