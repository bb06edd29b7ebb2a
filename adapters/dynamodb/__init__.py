"""DynamoDB (aioboto3): the event spine (one table, transactions), its reads, locked large appends, and the view store."""
