# SWE-bench instance image: the repository at the instance's base commit, installed (setup_repo.sh).
FROM --platform={platform} {env_image}

COPY ./setup_repo.sh /root/
RUN sed -i -e 's/\r$//' /root/setup_repo.sh
RUN /bin/bash /root/setup_repo.sh

WORKDIR /testbed/
