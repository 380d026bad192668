// Package catalog is recstream's item catalog: the record schema of the
// compacted items topic (key item_id, one JSON record per item), its
// validation, the in-memory index that each scoring process keeps, and the
// two consumers of the topic.
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
// CatalogWriter (ingest role, one consumer group) stores each record in
// Redis, fenced per source partition, sends invalid records to the DLQ,
// and, when an item becomes unavailable, publishes a refresh request for
// every user whose list held it. Loader (score role, no group) reads every
// partition from the beginning into an Index and follows the topic.
//
// # Metrics
//
//   - recstream_catalog_records_total{role,result}: records consumed by the
//     writer or the index loader, result ok, invalid or fenced
//   - recstream_catalog_invalid_total{reason}: invalid records sent to the DLQ
//   - recstream_catalog_items: items in this process's index
//   - recstream_catalog_withdrawn_total: items that became unavailable
//   - recstream_catalog_refresh_requests_total: refresh requests published
//     for lists that held a withdrawn item
package catalog
