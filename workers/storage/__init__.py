"""What both workers store in MongoDB, and how: one transaction per unit of work, rollups."""
