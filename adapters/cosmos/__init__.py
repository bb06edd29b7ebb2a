"""Azure Cosmos DB (`azure.cosmos.aio`): the event spine (commit items), its reads, and the view store."""
