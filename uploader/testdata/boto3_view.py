# An independent view of a bucket prefix through boto3: every key with its
# size, ETag, headers, metadata and the SHA-256 of its bytes, as JSON.
import hashlib, json, os, sys
import boto3

bucket, prefix = sys.argv[1], sys.argv[2]
s3 = boto3.client("s3", endpoint_url=os.environ["AWS_ENDPOINT_URL"])
out = {}
for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
    for o in page.get("Contents", []):
        key = o["Key"]
        g = s3.get_object(Bucket=bucket, Key=key)
        body = g["Body"].read()
        out[key] = {
            "size": o["Size"],
            "etag": o["ETag"],
            "contentType": g.get("ContentType", ""),
            "cacheControl": g.get("CacheControl", ""),
            "metadata": g.get("Metadata", {}),
            "sha256": hashlib.sha256(body).hexdigest(),
            "body": body.decode("utf-8") if key.endswith(".html") else "",
        }
json.dump(out, sys.stdout)
