"""Browser pages served by the server: the central station (:mod:`.station`) and the front panel."""
