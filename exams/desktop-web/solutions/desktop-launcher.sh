#!/bin/sh
mkdir -p /root/Desktop
printf '#!/bin/sh\necho http://127.0.0.1:8000/\n' > /root/Desktop/open-site.sh
chmod +x /root/Desktop/open-site.sh
