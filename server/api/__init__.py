"""The endpoints: the worker's WebSocket, the customers' HTTP API and live
order sockets, and the node's health routes.

They translate frames and requests into calls on the dispatcher and the
store, and errors into protocol error codes; no dispatch rule lives here.
"""
