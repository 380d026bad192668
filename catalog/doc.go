// Package catalog is recstream's item catalog: the record schema of the
// compacted items topic (key item_id, one JSON record per item), its
// validation, and the in-memory index that each scoring process keeps. The
// package is pure: the two consumers of the topic live in package consumer.
//
// # Records
//
//	{"item_id": "i42", "category": "shoes/running", "brand": "acme",
//	 "price": 59.9, "tags": ["trail"], "available": true, "created_at": 1764400000000}
//
// Only item_id is required; available defaults to true and created_at to
// the Kafka timestamp. An empty value (tombstone) withdraws the item. A
// record is rejected with a Reason (the DLQ header and metric label) when
// it is not one JSON object of known fields, its id is not a valid item
// id or differs from the message key, its category path has an empty
// level, more than MaxDepth levels or a character among {}|, its brand or
// tags are too long or hold such characters, its price is negative or not
// finite, or created_at is negative.
//
// # Consumers
//
// consumer.CatalogWriter (ingest role, one consumer group) stores each
// record in Redis, fenced per source partition, sends invalid records to
// the DLQ, and, when an item becomes unavailable, publishes a refresh
// request for every user whose list held it. consumer.CatalogLoader (score
// role, no group) reads every partition from the beginning into an Index
// and follows the topic. Their metrics (recstream_catalog_*) are listed in
// package consumer.
package catalog
