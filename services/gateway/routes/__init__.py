"""One RouteTableDef per resource; app.py adds them all."""
