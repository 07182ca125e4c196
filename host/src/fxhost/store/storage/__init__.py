"""Where asset and render files are kept: one interface (:mod:`.objects`), a local
folder (:mod:`.local`, the default) or an S3-compatible object store (:mod:`.s3`),
chosen by a URL (:mod:`.url`)."""
